"""(skeleton: written by its owner)"""
