"""Request body size limit, enforced on the bytes actually received (a lying or absent Content-Length too)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daemon.web.errors import error_response


class BodyTooLarge(Exception):
    """Raised from `receive` once the body passes the limit; the middleware answers 413."""


class BodyLimitMiddleware:
    """Answers 413 for a declared or streamed body over `max_bytes`, whatever the route does with the error."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> tuple[int, str, str]:
        return 413, "body_too_large", f"request body exceeds the limit of {self.max_bytes} bytes (api.max_body_bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await error_response(*self._too_large())(scope, receive, send)
                    return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # A route (or FastAPI's body parsing) may turn the error into its own answer; 413 replaces it.
            nonlocal started
            if exceeded:
                if not started:
                    started = True
                    await error_response(*self._too_large())(scope, _no_receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not started:
                await error_response(*self._too_large())(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
