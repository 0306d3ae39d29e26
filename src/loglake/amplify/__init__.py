"""AWS Amplify Hosting access logs: collected on a schedule into the lake (table `amplify_access`)."""
