"""HTML pages for people: tasks, a task's leaderboard with its chart, a ticket's page.

Server-rendered with Jinja2; charts are inline SVG built in ``charts.py``, so the pages
need no JavaScript and no network access beyond this server.
"""
