-- osu!track's hiscore_updates as atlasd's CDC path expects it (no public DDL exists; columns from
-- OSU_ATLAS_PIPELINE.md 1.1). osu!track writes it with
--   INSERT INTO hiscore_updates (user, beatmap_id, score, pp, mods, `rank`, score_time, mode,
--   is_classic) VALUES (...) ON DUPLICATE KEY UPDATE pp = VALUES(pp)
-- update_time must move when a row changes (ON UPDATE CURRENT_TIMESTAMP): atlasd keeps, per user
-- and item, the row with the newest update_time, so an update that kept the old time and lowered
-- pp could not win over the row it replaced (deploy/README.md "CDC").
CREATE DATABASE IF NOT EXISTS osutrack;
USE osutrack;
CREATE TABLE IF NOT EXISTS hiscore_updates (
    `user` INT UNSIGNED NOT NULL,
    beatmap_id INT UNSIGNED NOT NULL,
    score BIGINT NOT NULL,
    pp FLOAT NOT NULL,
    mods INT UNSIGNED NOT NULL,
    `rank` VARCHAR(3) NOT NULL,
    score_time DATETIME NOT NULL,
    update_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    mode TINYINT UNSIGNED NOT NULL,
    is_classic TINYINT NOT NULL DEFAULT 1,
    PRIMARY KEY (`user`, mode, beatmap_id, mods, score),
    KEY pp (pp)
) ENGINE=InnoDB;
