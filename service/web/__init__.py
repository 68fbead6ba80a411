"""Server-rendered pages: the agent desk and the value dashboard."""
