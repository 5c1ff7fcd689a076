-- Schema version 4: the delivery secret each contact gave us (inside the E2E channel), which
-- we present to the relay when sending to them so our messages count against their contact
-- quota, not their message-request quota. Our own secret is the setting 'delivery_secret'.

ALTER TABLE contacts ADD COLUMN delivery_access BLOB;
