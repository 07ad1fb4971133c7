"""`maubot.lib`: helpers of maubot's server. Only `zipimport` is here, for code importing it."""
