-- One row per message and recipient means one normalised recipient: the whole address
-- lower-cased (docs/decisions.md says why), with the address as the provider sent it kept for
-- display. New events arrive normalised; existing rows are normalised here.
ALTER TABLE sent_emails ADD COLUMN recipient_as_sent text;
ALTER TABLE email_events ADD COLUMN recipient_as_sent text;

-- Events keep their key (it hashes the address as sent, so a redelivered old event is still
-- recognised); only the column rows are found by changes.
UPDATE email_events SET recipient_as_sent = recipient, recipient = lower(recipient)
WHERE recipient <> lower(recipient);

-- A row is normalised when it is the only spelling of its recipient for its message. A message
-- whose events named one recipient in two spellings was split into two rows before this version;
-- those rows are left as they are (merging them needs the worker's rule, not SQL) and listed by:
--   SELECT message_id, lower(recipient), count(*) FROM sent_emails
--   GROUP BY 1, 2 HAVING count(*) > 1;
UPDATE sent_emails s SET recipient_as_sent = s.recipient, recipient = lower(s.recipient)
WHERE s.recipient <> lower(s.recipient)
  AND NOT EXISTS (
    SELECT 1 FROM sent_emails t
    WHERE t.message_id = s.message_id AND lower(t.recipient) = lower(s.recipient) AND t.id <> s.id
  );
