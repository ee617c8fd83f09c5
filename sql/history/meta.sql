SELECT key, value FROM snapshot;
