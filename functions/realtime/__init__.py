"""Realtime context: WebSocket connections, rooms (one per conversation), presence, typing and chat over WebSocket."""
