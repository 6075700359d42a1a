"""Row storage tiers: device (HBM), host (DDR) and SSD, behind one ``locate`` interface."""
