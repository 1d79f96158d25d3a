"""Lightning OS on Azure: a Pulumi program that deploys the images bake built."""
