"""Builds per-token clients on the one shared HTTP layer."""

from __future__ import annotations

from bot.api.gosms import GoSMSClient
from bot.api.gotsms import GotSMSClient
from bot.api.http import HttpClient


class Clients:
    def __init__(self, http: HttpClient, *, gosms_url: str, gotsms_url: str) -> None:
        self.http = http
        self.gosms_url = gosms_url
        self.gotsms_url = gotsms_url

    def gosms(self, token: str) -> GoSMSClient:
        return GoSMSClient(self.http, self.gosms_url, token)

    def gotsms(self, token: str | None = None) -> GotSMSClient:
        return GotSMSClient(self.http, self.gotsms_url, token)

    async def close(self) -> None:
        await self.http.close()
