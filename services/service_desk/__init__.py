"""The service desk: tickets from every channel, SLAs on business calendars, the knowledge
base and satisfaction surveys."""
