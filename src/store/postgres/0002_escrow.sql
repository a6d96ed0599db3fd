-- Escrowed (sealed) copies of issued temporary passwords, for "show password".
ALTER TABLE users ADD COLUMN pw_tmp_escrow TEXT;
