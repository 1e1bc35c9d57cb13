print("wirebeat")
