"""What the mail connectors (IMAP, Maildir) share; each of them keeps only its transport.

- `message`: MIME bytes -> subject, body, Message-ID, date (never raises).
- `priorities`: priorities as `$Priority_<name>` keywords or sender headers, and the keyword changes
  an update asks for.
- `queues`: the folder <-> queue mapping (inbound folder, `queue_folders`, `<queue_root>/<name>`).
- `tickets`: a parsed mail as a `Ticket`.
- `apply`: the three-step find of `apply` (expected queue, target, anywhere) and its reasons.
- `cursors`: opaque JSON cursors.
- `config`: the folder and priority settings both configs have.
"""
