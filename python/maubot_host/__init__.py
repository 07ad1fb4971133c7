"""The maubot-rs Python plugin worker (`python -m maubot_host`).

It speaks the JSON-lines protocol of docs/python-host-protocol.md with the server over the Unix
socket on its standard input, and hosts every instance of one plugin.
"""
