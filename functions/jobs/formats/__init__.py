"""The file formats jobs read and write: the Stratus export archive, and the imports (Stratus, ChatGPT, Claude)
turned into one neutral shape. Pure logic over binary file objects; nothing here calls AWS."""
