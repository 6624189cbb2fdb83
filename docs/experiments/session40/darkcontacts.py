"""Development fruit photos ranked by contacts between dark fruit of one colour (both under 60 of 255 in mean
lightness, channels within 25): the screen that chose which to train in session 40.

    PYTHONPATH=lib .venv/bin/python docs/experiments/session40/darkcontacts.py
"""
import numpy as np, sys
from indprior.data.suite.kinds import make_hoc
used={6,106,110,111,112,116,122,141,160,166,169,177,187,193,197,9,1,113,2,103,109,114,7}  # trained before
rows=[]
for s in list(range(10))+list(range(100,200)):
    img,gt=make_hoc("fruit",s); n=gt.max(); f=img.astype(float)
    col=np.array([f[gt==i].mean(0) for i in range(1,n+1)]); lum=col.mean(1)
    pairs=set()
    for a,b in [(gt[:-1],gt[1:]),(gt[:,:-1],gt[:,1:])]:
        m=(a!=b)&(a>0)&(b>0); pairs|={tuple(sorted(p)) for p in zip(a[m].tolist(),b[m].tolist())}
    dd=sum(1 for a,b in pairs if lum[a-1]<60 and lum[b-1]<60 and np.abs(col[a-1]-col[b-1]).max()<25)
    rows.append((dd,s,n,len(pairs),np.median(lum)))
for r in sorted(rows,reverse=True)[:25]: print(("*" if r[1] in used else " "),"dd %d seed %d n %d contacts %d medlum %.0f"%r)
