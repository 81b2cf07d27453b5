-- the Debezium connector's account: read the table (initial snapshot) and the binlog
CREATE USER IF NOT EXISTS 'debezium'@'%' IDENTIFIED BY 'dbz';
GRANT SELECT, RELOAD, SHOW DATABASES, LOCK TABLES, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'debezium'@'%';
FLUSH PRIVILEGES;
