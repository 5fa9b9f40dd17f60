"""Connecting and forgetting API tokens: check against the service, then store encrypted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.clients import Clients
from bot.api.errors import ApiPermissionError
from bot.db.crypto import TokenCipher
from bot.db.models import Service
from bot.db.outbox_repo import PollStateRepo
from bot.db.repo import CredentialRepo, DeviceRepo
from bot.poller.alerts import BalanceJob, DevicesJob, RentsJob
from bot.poller.codes import CodesJob
from bot.poller.nocode import NoCodeJob
from bot.poller.sms import SmsJob
from bot.poller.wake import WakeJob

TOKEN_SHAPE = re.compile(r"^[\x21-\x7e]{8,512}$")
JOBS_OF = {
    Service.GOTSMS: (CodesJob.name, RentsJob.name, BalanceJob.name, NoCodeJob.name, WakeJob.name),
    Service.GOSMS: (DevicesJob.name, SmsJob.name),
}


def looks_like_token(text: str) -> bool:
    return bool(TOKEN_SHAPE.match(text))


@dataclass(frozen=True)
class AccountCheck:
    """What the service told about the account behind a token."""

    balance: Decimal | None = None
    sms_total: int | None = None
    missing_permission: bool = False


async def check_token(clients: Clients, service: Service, token: str) -> AccountCheck:
    """Raises ApiError when the token is refused or the service cannot be reached."""
    if service is Service.GOTSMS:
        account = await clients.gotsms(token).account()
        return AccountCheck(balance=account.balance)
    try:
        page = await clients.gosms(token).list_sms(limit=1)
    except ApiPermissionError:
        return AccountCheck(missing_permission=True)
    return AccountCheck(sms_total=page.pagination.total_records)


async def store_token(
    session: AsyncSession, cipher: TokenCipher, user_id: int, service: Service, token: str
) -> None:
    await CredentialRepo(session, cipher).save(user_id, service, token)
    for job in JOBS_OF[service]:
        await PollStateRepo(session).start(user_id, job)
    await session.commit()


async def forget(
    session: AsyncSession, cipher: TokenCipher, user_id: int, services: set[Service]
) -> set[Service]:
    """Delete the tokens and what was watched with them; returns the services that had one."""
    repo = CredentialRepo(session, cipher)
    forgotten = {service for service in services if await repo.delete(user_id, service)}
    if Service.GOSMS in services:
        await DeviceRepo(session).delete_all(user_id)
    for service in services:
        for job in JOBS_OF[service]:
            await PollStateRepo(session).stop(user_id, job)
    await session.commit()
    return forgotten
