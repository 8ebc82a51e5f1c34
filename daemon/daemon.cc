// placeholder, replaced by the daemon wiring
