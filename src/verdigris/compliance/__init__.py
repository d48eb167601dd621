"""What the operator enforces and the law asks for: moderation measures, agreement versions and
consents, erasure of an account's personal data, and announcements to consenting recipients."""
