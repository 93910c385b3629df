-- The demo's sample database: a small shop with the types a real schema has, including the
-- AWS blog's purchase table (composite key customerid, orderid, productid).
DROP DATABASE IF EXISTS demo_shop;
CREATE DATABASE demo_shop DEFAULT CHARSET utf8mb4;
USE demo_shop;

CREATE TABLE customers (
  id INT UNSIGNED PRIMARY KEY,
  email VARCHAR(120) NOT NULL UNIQUE,
  name VARCHAR(80) NOT NULL,
  created_at DATETIME(3) NOT NULL,
  vip TINYINT(1) NOT NULL DEFAULT 0,
  balance DECIMAL(12,2) NOT NULL,
  member_since YEAR NOT NULL,
  last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
);
INSERT INTO customers
SELECT seq, CONCAT('user', seq, '@example.com'), CONCAT('Customer ', seq, IF(seq % 10 = 0, ' éè', '')),
       TIMESTAMP('2023-01-01') + INTERVAL seq * 37 MINUTE + INTERVAL (seq % 1000) * 1000 MICROSECOND, seq % 17 = 0, (seq * 7919 % 100000) / 100,
       2000 + seq % 24, TIMESTAMP('2024-03-01') + INTERVAL seq SECOND
FROM seq_1_to_5000;

CREATE TABLE products (
  sku VARCHAR(20) PRIMARY KEY,
  title VARCHAR(200) NOT NULL,
  price DECIMAL(10,2) NOT NULL,
  tags SET('new','sale','eco') NOT NULL DEFAULT '',
  attrs JSON,
  weight_kg FLOAT
);
INSERT INTO products
SELECT CONCAT('p', LPAD(seq, 4, '0')), CONCAT('Product ', seq), 1 + seq % 200 + 0.99,
       ELT(1 + seq % 4, '', 'new', 'sale,eco', 'new,sale,eco'),
       JSON_OBJECT('colour', ELT(1 + seq % 3, 'red', 'green', 'blue'), 'dims', JSON_ARRAY(seq % 10, seq % 7)),
       seq / 100
FROM seq_1_to_500;

CREATE TABLE purchase (
  customerid VARCHAR(20) NOT NULL,
  orderid VARCHAR(20) NOT NULL,
  productid VARCHAR(20) NOT NULL,
  quantity INT NOT NULL,
  PRIMARY KEY (customerid, orderid, productid)
);
INSERT INTO purchase
SELECT CONCAT('c', 1 + (seq DIV 3) % 5000), CONCAT('o', 1 + seq DIV 3), CONCAT('p', LPAD(1 + seq * 13 % 500, 4, '0')), 1 + seq % 5
FROM seq_1_to_30000;

CREATE TABLE orders (
  id BIGINT PRIMARY KEY,
  customer_id INT UNSIGNED NOT NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL,
  placed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  total DECIMAL(14,2) NOT NULL,
  note TEXT,
  receipt BLOB,
  ship_to POINT
);
INSERT INTO orders
SELECT seq, 1 + seq % 5000, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'),
       TIMESTAMP('2024-01-01') + INTERVAL seq MINUTE, seq % 1000 + 0.5, IF(seq % 5 = 0, NULL, CONCAT('note ', seq)),
       IF(seq % 3 = 0, UNHEX(SHA2(seq, 256)), NULL), POINT(seq % 180, seq % 90)
FROM seq_1_to_10000;

-- No primary key: exported as one stream.
CREATE TABLE audit_log (at DATETIME NOT NULL, message VARCHAR(200));
INSERT INTO audit_log SELECT TIMESTAMP('2024-06-01') + INTERVAL seq SECOND, CONCAT('event ', seq) FROM seq_1_to_2000;
ANALYZE TABLE customers, products, purchase, orders, audit_log;
