"""The shared PostgreSQL store of several callbackd hosts (store.url): its schema,
migrations and connections."""
