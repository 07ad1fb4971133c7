"""Test plugin: a package with native code imported without declaring it. Pillow (`PIL`) is one
of the packages maubot's container image ships for plugins, which import it unlisted.

`!image` draws a 64×64 PNG with Pillow, uploads it with `self.client.upload_media` and sends it
to the room as an `m.image` message with body "square.png".
"""

from io import BytesIO

from mautrix.types import ImageInfo, MediaMessageEventContent, MessageType
from PIL import Image, ImageDraw

from maubot import MessageEvent, Plugin
from maubot.handlers import command

SIZE = 64


def draw_square() -> bytes:
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill=(200, 30, 30))
    out = BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class ImageBot(Plugin):
    @command.new("image", help="Send a picture of a square")
    async def image(self, evt: MessageEvent) -> None:
        data = draw_square()
        mxc = await self.client.upload_media(data, mime_type="image/png", filename="square.png")
        content = MediaMessageEventContent(
            msgtype=MessageType.IMAGE,
            body="square.png",
            url=mxc,
            info=ImageInfo(mimetype="image/png", size=len(data), width=SIZE, height=SIZE),
        )
        await evt.respond(content)
