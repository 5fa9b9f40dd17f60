from bot.lazy_types import import_aiogram

import_aiogram()  # the suite meets aiogram's types the way `python -m bot` does
