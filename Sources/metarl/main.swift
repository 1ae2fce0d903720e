print("metarl")
