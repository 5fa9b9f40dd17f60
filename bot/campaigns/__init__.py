"""GoSMS campaigns (/bulk): rows parsed and checked, sent paced and once, followed to delivery."""
