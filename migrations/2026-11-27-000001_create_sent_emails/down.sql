DROP TABLE email_events;
DROP TABLE sent_emails;
