-- Documents of every kind, one row each. doc is jsonb so that operators can
-- query state with SQL (doc->>'hostId' and the like); the store itself only
-- reads it back whole. kind and id use the "C" collation: List's order is
-- byte order on both engines, whatever the database's locale, and the
-- primary key index serves "WHERE kind = $1 ORDER BY id" as it is, which
-- is why there is no separate index on kind.
CREATE TABLE documents (
    kind       text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    version    bigint NOT NULL CHECK (version > 0),
    doc        jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
);

-- Opaque content (app packages, tens of MiB).
CREATE TABLE blobs (
    id         text COLLATE "C" PRIMARY KEY,
    data       bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Packages are zip files, already compressed: storing them out of line
-- without another compression pass saves CPU on every upload.
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;
