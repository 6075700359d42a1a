"""Ground floor: operating-system helpers every room may use (it imports no other room)."""
