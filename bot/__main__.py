from bot.config import load_settings

settings = load_settings()  # before the heavy imports: a bad setting is reported at once

from bot.app import main  # noqa: E402

main(settings)
