"""Messages: the outgoing queue and its pacing, the journal, the notification queue, statuses."""
