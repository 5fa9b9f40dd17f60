"""The automatic refund across a SIGKILL of `python -m bot` (once per backend: the answer shapes
of the fakes are tried by tests/test_nocode.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from bot.db.engine import create_engine, create_session_factory
from bot.db.models import RefundState, RentWatch, utcnow
from bot.db.outbox_repo import PollStateRepo
from bot.poller.nocode import JOB
from tests.backends import Place
from tests.conftest import GOTSMS_TOKEN
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import FakeTelegram
from tests.test_restart import connect as connect_process
from tests.test_restart import killed, says, started

KILLED = 7402


async def test_sigkill_between_the_deadline_and_the_refund(
    bot_env: dict[str, str], tmp_path: Path, tg: FakeTelegram, gotsms: FakeGotSMS, backend: Place
) -> None:
    """`python -m bot` is killed while its automatic refund is on its way to GotSMS (which
    still refunds): the restarted process finds the refund `trying`, never sends it again,
    and tells the user it went through — once."""
    env = bot_env | {"POLL_INTERVAL": "1"}
    bot = await started(env, tmp_path, tg)
    await connect_process(tg, KILLED, "gotsms")
    tg.send_text(KILLED, "/notify")
    await says(tg, KILLED, "Notifications")
    tg.press_button(KILLED, "Refund a rental automatically if no code arrives")

    def switched_on() -> bool:
        labels = " ".join(tg.last_bot_message(KILLED).button_texts())
        return "✅ Refund a rental automatically" in labels

    await tg.wait_for(switched_on, timeout=20)
    tg.send_text(KILLED, "/rent telegram")
    await says(tg, KILLED, "Plans of Telegram")
    tg.press_button(KILLED, "USA · 1 day · 1.00")
    await says(tg, KILLED, "area code")
    tg.press_button(KILLED, "Any area code")
    await says(tg, KILLED, "Rent a number?")
    tg.press_button(KILLED, "Rent for 1.00")
    await says(tg, KILLED, "Your number")
    [rent] = gotsms.rents_of(GOTSMS_TOKEN)

    engine = create_engine(backend.database_url(tmp_path / "state" / "bot.db"))
    factory = create_session_factory(engine)
    try:
        gotsms.set_latency(3.0)
        async with factory() as session:
            await session.execute(
                update(RentWatch)
                .where(RentWatch.rent_id == rent["id"])
                .values(
                    remind_at=utcnow() - timedelta(seconds=1),
                    started_at=utcnow() - timedelta(minutes=15, seconds=1),
                )
            )
            await PollStateRepo(session).poke(KILLED, JOB, utcnow())
            await session.commit()

        def refunds() -> int:
            return sum(1 for r in gotsms.requests if r.method == "POST" and "/refund" in r.path)

        await tg.wait_for(lambda: refunds() == 1, timeout=30)
        await killed(bot)
        await asyncio.sleep(3.5)  # GotSMS finishes the refund nobody waits for any more
        gotsms.set_latency(0)
        assert gotsms.rents_of(GOTSMS_TOKEN)[0]["status"] == "finished"
        async with factory() as session:
            watch = await session.get(RentWatch, rent["id"])
            assert watch is not None
            assert watch.refund_state == RefundState.TRYING

        bot = await started(env, tmp_path, tg)
        done = "so I refunded the rental: 1.00 is back on your balance."
        await tg.wait_for_bot_message(KILLED, done, timeout=45)
        await asyncio.sleep(2.0)  # a second refund or a second push would show up now
        assert await bot.stop() == 0
        assert "Traceback" not in bot.log, bot.log
        assert refunds() == 1, "exactly one refund call"
        assert sum(1 for m in tg.bot_messages(KILLED) if done in m.text) == 1
        assert gotsms.balance(GOTSMS_TOKEN) == 100.0
        async with factory() as session:
            watch = await session.get(RentWatch, rent["id"])
            assert watch is not None
            assert watch.refund_state == RefundState.REFUNDED
    finally:
        await engine.dispose()
