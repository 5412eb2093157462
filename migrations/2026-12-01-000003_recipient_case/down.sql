UPDATE sent_emails SET recipient = recipient_as_sent WHERE recipient_as_sent IS NOT NULL;
UPDATE email_events SET recipient = recipient_as_sent WHERE recipient_as_sent IS NOT NULL;
ALTER TABLE email_events DROP COLUMN recipient_as_sent;
ALTER TABLE sent_emails DROP COLUMN recipient_as_sent;
