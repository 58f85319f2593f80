"""SendGrid Inbound Parse building blocks: multipart parsing, signature checks, the email's identity.

Pure functions on the standard library (and ``cryptography``, imported lazily); no engine imports.
"""
