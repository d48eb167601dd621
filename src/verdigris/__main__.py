from verdigris.cli import main

main()
