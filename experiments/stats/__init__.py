"""Pure statistics: sufficient statistics in, frozen results out (see README.md)."""
