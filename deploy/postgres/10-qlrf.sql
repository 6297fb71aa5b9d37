-- The run store's database and role, made once when the PostgreSQL volume is new.
-- The worker applies the store's migrations itself when it connects.
-- Change the password (here and in docker-compose.yml) before anything but a laptop.
CREATE ROLE qlrf LOGIN PASSWORD 'qlrf';
CREATE DATABASE qlrf OWNER qlrf;
