"""Reading videos and images, resizing frames and masks, and encoding sentences as words."""
