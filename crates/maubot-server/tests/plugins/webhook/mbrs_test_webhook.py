"""Test plugin: a web app. `GET /hello?name=` greets, `POST /notify` sends a notice to a room,
`!url` answers the instance's web app URL."""

from aiohttp import web as aioweb

from maubot import MessageEvent, Plugin
from maubot.handlers import command, web


class WebhookBot(Plugin):
    @web.get("/hello")
    async def hello(self, request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(text=f"hello {request.query.get('name', 'world')}")

    @web.post("/notify")
    async def notify(self, request: aioweb.Request) -> aioweb.Response:
        data = await request.json()
        event_id = await self.client.send_notice(data["room_id"], data["text"])
        self.log.info("notified %s", data["room_id"])
        return aioweb.json_response({"event_id": event_id})

    @command.new("url", help="Show the web app's URL")
    async def url(self, evt: MessageEvent) -> None:
        await evt.reply(str(self.webapp_url), markdown=False)
