-- Refresh-token rotation: a replaced token remembers its successor (sealed), so a retry within the
-- grace window gets that same successor instead of starting a second chain.
ALTER TABLE broker_refresh_tokens ADD COLUMN successor_sealed TEXT;
