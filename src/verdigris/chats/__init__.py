"""Chats and contacts of an instance: its phonebook, archived chats, disappearing-message timers."""
