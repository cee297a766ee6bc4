"""The result cache: a port (`ResultCache`) with an in-process LRU and a Redis adapter, canonical keys,
framed compressed values, single-flight, and `CacheService`, the one funnel servicers compute through."""
