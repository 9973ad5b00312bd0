-- What the PBX answered to an Originate it refused, in Asterisk's own words, on the
-- attempt it ended ("rejected by the PBX"); and when the task was cancelled while the
-- attempt was in a call (the call was then hung up).
ALTER TABLE attempts ADD COLUMN refusal TEXT;
ALTER TABLE attempts ADD COLUMN cancel_time TEXT;

-- An attempt given back because the PBX could not take calls (its dialplan gone, the
-- AMI user not permitted, ...) rang nobody and used no try, so its attempt row goes;
-- the task's latest such refusal stays here, with how many attempts were given back.
CREATE TABLE given_back (
    task_id  INTEGER PRIMARY KEY REFERENCES tasks (id),
    time     TEXT    NOT NULL,
    refusal  TEXT    NOT NULL,
    count    INTEGER NOT NULL DEFAULT 1
);
