"""Attribution methods: one small module each, registered by name in `registry`."""
