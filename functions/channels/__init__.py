"""Messaging channels: WhatsApp, Messenger and Telegram conversations answered through the reply generator."""
