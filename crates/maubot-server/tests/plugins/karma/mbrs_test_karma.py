"""Test plugin: karma in a legacy SQLAlchemy database, in the declarative ORM style (a mapped
class, sessions), changed by passive commands.

Any message with `<name>++` or `<name>--` changes that name's karma by one and is answered
"karma <name>: <new value>"; `!karma <name>` answers "<name> has karma <n>" (0 for a name never
seen).
"""

from typing import Tuple

from sqlalchemy import Column, Integer, String
from sqlalchemy.ext.declarative import declarative_base
from sqlalchemy.orm import Session, sessionmaker

from maubot import MessageEvent, Plugin
from maubot.handlers import command

Base = declarative_base()


class Karma(Base):
    __tablename__ = "karma"

    name = Column(String(255), primary_key=True)
    value = Column(Integer, nullable=False, default=0)

    @classmethod
    def get(cls, session: Session, name: str) -> int:
        row = session.query(cls).get(name)
        return row.value if row is not None else 0


class KarmaBot(Plugin):
    make_session: sessionmaker

    async def start(self) -> None:
        # Mapped classes are shared by every instance; each binds its sessions to its own engine.
        Base.metadata.create_all(self.database)
        self.make_session = sessionmaker(bind=self.database)

    @command.passive(r"(\S+)\+\+")
    @command.passive(r"(\S+)--")
    async def change(self, evt: MessageEvent, match: Tuple[str, str]) -> None:
        # maubot gives the whole message first, then the regex's groups: which of the two
        # passives matched shows in the message itself.
        body, name = match[0], match[1]
        delta = 1 if f"{name}++" in body else -1
        session = self.make_session()
        try:
            row = session.query(Karma).get(name)
            if row is None:
                row = Karma(name=name, value=0)
                session.add(row)
            row.value += delta
            session.commit()
            value = row.value
        finally:
            session.close()
        await evt.reply(f"karma {name}: {value}")

    @command.new("karma", help="Show someone's karma")
    @command.argument("name")
    async def karma(self, evt: MessageEvent, name: str) -> None:
        if not name:
            await evt.reply("**Usage:** !karma <name>")
            return
        session = self.make_session()
        try:
            value = Karma.get(session, name)
        finally:
            session.close()
        await evt.reply(f"{name} has karma {value}")
