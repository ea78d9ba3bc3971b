"""Segmentation metrics as papers compute them: semantic, COCO mask AP, panoptic quality."""
