"""The audit log (API.md, Audit log): the events function's writer stores each audit event, append-only; the audit
function serves a user's own log and the stage's to auditors; personal fields are encrypted per user
(crypto-shredding)."""
