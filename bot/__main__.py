"""`python -m bot`: check the settings, then start the bot."""

from bot.config import load_settings


def run() -> None:
    settings = load_settings()  # before the heavy imports: a bad setting is reported at once
    from bot.lazy_types import import_aiogram

    import_aiogram()
    from bot.app import main

    main(settings)


if __name__ == "__main__":
    run()
