-- Type-coverage schema for the MySQL engine round trip (loaded into an empty database
-- with: mariadb --default-character-set=utf8mb4 <db> < type_coverage.sql).
-- Rows are written under a permissive sql_mode so zero dates and invalid ENUMs exist.
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';
SET SESSION time_zone = '+00:00';
ALTER DATABASE CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci COMMENT 'type coverage ✓';

CREATE TABLE numbers (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  f FLOAT NULL,
  d DOUBLE NULL,
  fp FLOAT(7,4) NULL,
  r REAL NULL,
  dec65 DECIMAL(65,30) NULL,
  ubig BIGINT UNSIGNED NULL,
  sbig BIGINT NULL,
  ti TINYINT NULL,
  b1 BIT(1) NULL,
  b10 BIT(10) NULL,
  b64 BIT(64) NULL,
  yr YEAR NULL
) ENGINE=InnoDB COMMENT='numbers: floats must round-trip bit for bit';

INSERT INTO numbers (f, d, fp, r, dec65, ubig, sbig, ti, b1, b10, b64, yr) VALUES
 (1.1, 1.1, 1.1, 0.1, 0.1, 18446744073709551615, -9223372036854775808, -128, b'1', b'1000000001', b'1111111111111111111111111111111111111111111111111111111111111111', 2155),
 (3.4028235e38, 1.7976931348623157e308, 999.9999, 2.2250738585072014e-308, 99999999999999999999999999999999999.999999999999999999999999999999, 0, 9223372036854775807, 127, b'0', b'0', b'0', 1901),
 (1.17549435e-38, 2.2250738585072014e-308, -999.9999, 5e-324, -99999999999999999999999999999999999.999999999999999999999999999999, 1, 0, 0, NULL, b'11', b'1000000000000000000000000000000000000000000000000000000000000000', 0),
 (-0e0, -0e0, -0e0, -0e0, -0.000000000000000000000000000001, 42, -1, NULL, b'1', NULL, b'0100111001010101', NULL),
 (1.4e-45, 4.9e-324, 0.0001, 1e-310, 0, NULL, NULL, 1, NULL, NULL, NULL, 2000),
 (-3.4028235e38, -1.7976931348623157e308, 123.4567, 1.0000000000000002, 3.141592653589793238462643383279502884, 7, 7, 7, b'0', b'1', b'1', 1999),
 (16777217, 9007199254740993, 0.1, 0.3333333333333333, 1, 8, 8, 8, b'1', b'1', b'10', 2024),
 (0.3333333, 0.1e0 + 0.2e0, 1.5, 1e300, 2, 9, 9, 9, NULL, NULL, NULL, NULL);
-- Keep a gap in the counter: AUTO_INCREMENT must come back as 1000, not max(id)+1.
ALTER TABLE numbers AUTO_INCREMENT = 1000;

CREATE TABLE temporal (
  id INT NOT NULL PRIMARY KEY,
  d DATE NULL,
  dt DATETIME(6) NULL,
  ts TIMESTAMP(6) NULL DEFAULT NULL,
  ts0 TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  t TIME(6) NULL,
  t0 TIME NULL
) ENGINE=InnoDB;

INSERT INTO temporal VALUES
 (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '2001-02-03 04:05:06', '-838:59:59', '838:59:59'),
 (2, '2020-00-15', '2020-01-00 12:00:00.5', '2038-01-19 03:14:07.999999', '1970-01-01 00:00:01', '-00:00:00.000001', '-838:59:59'),
 (3, '9999-12-31', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:01.000001', '2021-03-28 01:30:00', '838:59:59.000000', '00:00:00'),
 (4, NULL, NULL, NULL, '2000-01-01 00:00:00', NULL, NULL),
 (5, '1000-01-01', '1000-01-01 00:00:00', '2021-10-31 01:30:00.123456', '2021-10-31 01:30:00', '12:34:56.789012', '-12:00:00');

CREATE TABLE strings (
  id INT NOT NULL PRIMARY KEY,
  c CHAR(10) NULL,
  vc VARCHAR(200) NULL,
  l1 VARCHAR(100) CHARACTER SET latin1 COLLATE latin1_swedish_ci NULL COMMENT 'latin1 text',
  b8 BINARY(8) NULL,
  vb VARBINARY(200) NULL,
  bl BLOB NULL,
  tx MEDIUMTEXT NULL,
  cb VARCHAR(50) CHARACTER SET binary NULL,
  e ENUM('', 'a', 'b', '1', '0') NULL,
  e2 ENUM('2', '1') NULL,
  s SET('x', 'y', 'z') NULL,
  j JSON NULL,
  u UUID NULL,
  ip INET6 NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO strings VALUES
 (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (2, '', '', '', '', '', '', '', '', '', '2', '', '{}', '00000000-0000-0000-0000-000000000000', '::'),
 (3, 'NULL', 'NULL', 'NULL', 'NULL', 'NULL', 'NULL', 'NULL', 'NULL', 'a', '1', 'x,z', 'null', '123e4567-e89b-12d3-a456-426614174000', '::ffff:1.2.3.4'),
 (4, '\\N', '\\N', '\\N', '\\N', '\\N', '\\N', '\\N', '\\N', '1', '2', 'x,y,z', '"\\\\N"', NULL, '2001:db8::1'),
 (5, 'a\tb', 'tab\there\nnew line\r\ncrlf \\ back\\slash', 'café naïve', x'00090a0d5c4e0000', x'00ff5c0a090d004e', x'000102030405060708090a0b0c0d0e0f5c5c4e', 'emoji 😀🎉 and 中文', x'5c4e', '0', '1', 'y', '{"k": "v\\tw", "e": "😀"}', NULL, NULL),
 (6, ' trail ', 'trailing spaces   ', 'Ærø ß ÿ', x'ffffffffffffffff', x'', x'', '', x'00', 'b', NULL, NULL, '[1, 2.5, "x"]', NULL, NULL),
 (7, 'x', 'NUL\0inside', 'NUL\0inside', x'0000000000000000', x'5c', x'5c', '\\', x'5c30', '', '2', 'z', '{"a": null}', NULL, NULL);
-- Invalid ENUM values become index 0 (shown as '' like the real '' member, which is index 1).
INSERT INTO strings (id, e, e2) VALUES (8, 'not-a-member', 'nope');

CREATE TABLE shapes (
  id INT NOT NULL PRIMARY KEY,
  g GEOMETRY NULL,
  p POINT NULL,
  poly POLYGON REF_SYSTEM_ID=4326 NULL
) ENGINE=InnoDB;

INSERT INTO shapes VALUES
 (1, ST_GeomFromText('POINT(1 2)', 4326), ST_GeomFromText('POINT(-0.5 1e-300)'), ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))', 4326)),
 (2, ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,1 1,2 3))'), NULL, NULL),
 (3, ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))', 3857), ST_GeomFromText('POINT(0.1 0.2)', 0), NULL);

CREATE TABLE heap_myisam (a INT NULL, b VARCHAR(20) NULL) ENGINE=MyISAM;
INSERT INTO heap_myisam VALUES (1, 'dup'), (1, 'dup'), (1, 'dup'), (NULL, NULL), (NULL, NULL), (2, '');

CREATE TABLE aria_log (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, msg TEXT) ENGINE=Aria;
INSERT INTO aria_log (msg) VALUES ('first'), ('second'), (NULL);

CREATE TABLE generated (
  id INT NOT NULL PRIMARY KEY,
  a INT NOT NULL,
  doubled INT AS (a * 2) VIRTUAL,
  label VARCHAR(30) AS (CONCAT('n=', a)) STORED,
  hidden INT INVISIBLE DEFAULT 7,
  note VARCHAR(20) NULL COMMENT 'column comment with `backticks` and ''quotes''',
  CONSTRAINT positive_a CHECK (a >= 0),
  KEY (label)
) ENGINE=InnoDB COMMENT='generated + invisible columns';
INSERT INTO generated (id, a, hidden, note) VALUES (1, 1, 100, 'x'), (2, 0, NULL, NULL), (3, 42, 7, '');

CREATE TABLE parted (
  id INT NOT NULL,
  created DATE NOT NULL,
  v VARCHAR(10),
  PRIMARY KEY (id, created)
) ENGINE=InnoDB
PARTITION BY RANGE (YEAR(created)) (
  PARTITION p2019 VALUES LESS THAN (2020),
  PARTITION p2020 VALUES LESS THAN (2021),
  PARTITION pmax VALUES LESS THAN MAXVALUE
);
INSERT INTO parted VALUES (1, '2019-05-01', 'a'), (2, '2020-05-01', 'b'), (3, '2030-01-01', 'c');

CREATE TABLE `we``ird.na me%` (
  `select` INT NOT NULL PRIMARY KEY,
  `a.b` VARCHAR(10) NULL,
  `ünïcødé` VARCHAR(10) NULL,
  `sp ace` INT NULL,
  `back``tick` INT NULL
) ENGINE=InnoDB;
INSERT INTO `we``ird.na me%` VALUES (1, 'x', 'ü', 1, 2), (2, NULL, '中', NULL, NULL);

CREATE TABLE parent (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB;
CREATE TABLE child (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  parent_id INT NULL,
  CONSTRAINT fk_child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE
) ENGINE=InnoDB;
CREATE TABLE parent_log (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, parent_id INT, at_insert VARCHAR(20)) ENGINE=InnoDB;
-- id 0 exists only under NO_AUTO_VALUE_ON_ZERO (as in Magento's store tables).
SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION';
INSERT INTO parent (id, name) VALUES (0, 'zero id'), (1, 'one'), (2, 'two');
INSERT INTO child (parent_id) VALUES (1), (1), (2), (NULL);
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';

CREATE SEQUENCE seq_orders START WITH 100 INCREMENT BY 5 MINVALUE 1 MAXVALUE 100000 CACHE 10;
SELECT NEXTVAL(seq_orders), NEXTVAL(seq_orders), NEXTVAL(seq_orders);

-- Views: the name order is the reverse of the dependency order.
CREATE VIEW z_base AS SELECT id, vc, l1 FROM strings WHERE id > 1;
CREATE VIEW a_top AS SELECT id, vc FROM z_base WHERE id < 7;
CREATE SQL SECURITY INVOKER VIEW `m view ü` AS SELECT p.name, COUNT(c.id) AS n FROM parent p LEFT JOIN child c ON c.parent_id = p.id GROUP BY p.name;

DELIMITER ;;
-- The parent_log rows exist only because of this trigger: creating it before the data
-- is loaded would duplicate them (Sakila's film_text hazard).
CREATE TRIGGER parent_ai AFTER INSERT ON parent FOR EACH ROW
BEGIN
  INSERT INTO parent_log (parent_id, at_insert) VALUES (NEW.id, 'trigger ✓');
END;;
CREATE TRIGGER parent_bi BEFORE INSERT ON parent FOR EACH ROW SET NEW.name = COALESCE(NEW.name, 'unnamed');;
CREATE TRIGGER parent_bi2 BEFORE INSERT ON parent FOR EACH ROW FOLLOWS parent_bi SET NEW.name = TRIM(NEW.name);;
DELIMITER ;

-- Rows after the trigger exists, as an application would write them.
INSERT INTO parent (name) VALUES (' three ');

SET SESSION sql_mode = 'PIPES_AS_CONCAT,ANSI_QUOTES,NO_ENGINE_SUBSTITUTION';
DELIMITER ;;
CREATE DEFINER=`root`@`localhost` FUNCTION greet(who VARCHAR(20)) RETURNS VARCHAR(50) CHARSET utf8mb4
  DETERMINISTIC
  COMMENT 'sql_mode with PIPES_AS_CONCAT: || concatenates'
BEGIN
  RETURN 'hello ' || who || ' 👋';
END;;
CREATE DEFINER=`nobody`@`%` PROCEDURE `count strings`(OUT n INT)
  SQL SECURITY INVOKER
BEGIN
  SELECT COUNT(*) INTO n FROM strings;
END;;
DELIMITER ;
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';

CREATE EVENT nightly_cleanup ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00'
  ON COMPLETION PRESERVE DISABLE COMMENT 'never runs in tests'
  DO DELETE FROM aria_log WHERE msg IS NULL;
CREATE EVENT far_future_once ON SCHEDULE AT '2037-01-01 00:00:00' ON COMPLETION NOT PRESERVE
  DO INSERT INTO aria_log (msg) VALUES ('event ran');
