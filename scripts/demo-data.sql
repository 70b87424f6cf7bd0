-- The demo's tables, created by scripts/run (and by the README tour's test) as the gateway's
-- database login, so the demo user reaches them through the gateway.
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, country text NOT NULL);
INSERT INTO customers VALUES (1, 'Ada Lovelace', 'GB'), (2, 'Grace Hopper', 'US'), (3, 'Edsger Dijkstra', 'NL');
CREATE TABLE safe (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO safe VALUES (1, 'writes to this table need no second factor');
