"""The dashboard: server-rendered pages (pages), what they show (data), who is logged in (session)."""
