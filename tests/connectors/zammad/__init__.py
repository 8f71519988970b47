"""Tests of the Zammad connector and its fake server."""
